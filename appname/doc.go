// Package appname says what an app name is. The SSH user name is the app
// name, so the bridge checks it before anything else; the embedded platform
// knows no other apps; access control refuses anything else. One rule, in
// one place, for all three.
package appname
