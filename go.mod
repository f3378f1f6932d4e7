module github.com/rfc6455/websocket

go 1.25
