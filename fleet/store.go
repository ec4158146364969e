package fleet

import "github.com/eclipse/paho.mqtt.golang/packets"

// noStore is the MQTT message store of both ends of the fleet link: it
// keeps nothing, so nothing is resent after a reconnect. Nothing needs to
// be: the agent re-publishes its retained status on every connect, and
// commands are idempotent, carry an expiry and are re-sent by the
// operator. paho's own resend of stored packets also races with its
// writer (it sets the Dup flag on a packet while the new connection is
// writing it, seen with -race across a broker restart).
type noStore struct{}

func (noStore) Open()                             {}
func (noStore) Put(string, packets.ControlPacket) {}
func (noStore) Get(string) packets.ControlPacket  { return nil }
func (noStore) All() []string                     { return nil }
func (noStore) Del(string)                        {}
func (noStore) Close()                            {}
func (noStore) Reset()                            {}
