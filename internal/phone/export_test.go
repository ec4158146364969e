package phone

// MP3FrameLen lets the tests in package phone_test, which feed a hub
// through phonetest (a package that imports this one), read a frame
// header.
var MP3FrameLen = mp3FrameLen
