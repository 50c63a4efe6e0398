// Package appname says what an app name is. The SSH user name is the app
// name, so the bridge checks it before anything else; the embedded platform
// knows no other apps; access control refuses anything else. One rule, in
// one place, for all three. A user name may also ask for connection mode
// with a suffix (ParseUser): "demo-app+conn" is app "demo-app".
package appname
