// Package fleet is moh's outbound-only management link: the MQTT agent
// that runs inside mohd and answers commands published to its topics, and
// the client side mohctl uses to send those commands and read the boxes'
// retained status.
//
// Topics (device id = the CN of the box's client certificate):
//
//	moh/<id>/status           retained status document; last will "offline"
//	moh/<id>/cmd              commands for one box
//	moh/group/<group>/cmd     commands for every box in a group
//	moh/<id>/reply/<request>  the box's answer to one command
package fleet
