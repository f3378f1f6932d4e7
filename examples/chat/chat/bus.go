package chat

import "sync"

// Event is what a server publishes to a room's bus: a member joined, left
// or said something, or a server lists its members in the room.
type Event struct {
	Type   string `json:"type"`             // "join", "leave", "message" or "here"
	Origin string `json:"origin"`           // the server that published it
	Member string `json:"member,omitempty"` // join, leave, message: the member's ID on its server
	Name   string `json:"name,omitempty"`   // join, leave, message: the member's name
	Text   string `json:"text,omitempty"`   // message: the text the member sent
	// Call, on a join, says that the server has just begun following the
	// room: every other server with members in it answers with a "here".
	Call bool `json:"call,omitempty"`
	// Members, on a "here", are the server's members in the room, ID to
	// name.
	Members map[string]string `json:"members,omitempty"`
}

// Bus carries each room's events to every server that follows the room,
// in one order per room that all of them see.
type Bus interface {
	// Subscribe calls deliver with each event of room, one at a time and
	// in the room's order, until cancel is called: every event that
	// Publish takes after Subscribe returns, and possibly some before.
	// deliver must not wait, nor call Publish.
	Subscribe(room string, deliver func(Event)) (cancel func())

	// Publish sends ev to room. Events published one after the other are
	// delivered in that order. An error means ev was refused: it will not
	// be delivered.
	Publish(room string, ev Event) error
}

// LocalBus is the bus of a chat served by one process: Publish hands the
// event to the room's subscribers before it returns. The zero value is
// ready to use.
type LocalBus struct {
	mu   sync.Mutex                      // held while delivering: one order per room
	subs map[string][]*func(event Event) // guarded by mu: room to deliver functions
}

// Subscribe implements Bus.
func (b *LocalBus) Subscribe(room string, deliver func(Event)) (cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = make(map[string][]*func(Event))
	}
	d := &deliver
	b.subs[room] = append(b.subs[room], d)
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		subs := b.subs[room]
		for i, s := range subs {
			if s == d {
				subs = append(subs[:i:i], subs[i+1:]...)
				break
			}
		}
		if len(subs) == 0 {
			delete(b.subs, room)
		} else {
			b.subs[room] = subs
		}
	}
}

// Publish implements Bus; it never refuses.
func (b *LocalBus) Publish(room string, ev Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, deliver := range b.subs[room] {
		(*deliver)(ev)
	}
	return nil
}
