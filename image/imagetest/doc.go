// Package imagetest boots the moh appliance disk image in QEMU and checks
// that it does its job: it plays by itself, seamlessly, survives power cuts
// and spares the flash. The boot test runs only when MOH_IMAGE names a
// built image (make image-test); the audio checks it relies on are unit
// tested on their own.
package imagetest
