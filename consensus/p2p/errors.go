package p2p

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ErrProtocol is returned when a peer's answer breaks its protocol (wrong
// frame kind, wrong height, bytes after the end); the stream is reset.
var ErrProtocol = errors.New("p2p: protocol violation")

// maxErrorMessage bounds the error text a peer may send back.
const maxErrorMessage = 1024

// RemoteError is an error the peer reported in its answer: the request
// arrived and was refused, as opposed to a transport failure.
type RemoteError struct {
	Peer     peer.ID
	Protocol protocol.ID
	Message  string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("p2p: %s %s: remote error: %s", e.Peer, e.Protocol, e.Message)
}

// errorText is what a server tells its peer about err: the message,
// truncated to maxErrorMessage bytes.
func errorText(err error) []byte {
	msg := err.Error()
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	return []byte(msg)
}
