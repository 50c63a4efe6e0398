package bridge

// Exit codes the bridge itself sends when it, not the remote command, ends a
// session. They sit high in the range, away from the usual command codes
// (0-125), the shell's 126/127 and 128+N for a death by signal N, so that a
// script can tell "the bridge could not run it" from "it ran and failed".
// The README lists them; keep the two in step.
const (
	ExitAccessDenied     = 240 // this key may not use this app, or the request is not allowed for it
	ExitAppNotFound      = 241 // the platform knows no such app
	ExitPlatformDown     = 242 // the platform could not be reached or answered with an error
	ExitQuota            = 243 // too many one-offs or requests for the app or account
	ExitStartFailed      = 244 // the one-off did not start (operation error or start deadline)
	ExitUploadRefused    = 245 // the platform refused a pending upload; it stays pending
	ExitInactivity       = 246 // the platform stopped the one-off after a period of inactivity
	ExitRequestRefused   = 247 // the platform refused the run request as invalid
	ExitInternal         = 248 // anything else that went wrong in the bridge
	ExitPlatformLostExit = 249 // the command's exit code could not be read back
	ExitInvalidAppName   = 250 // the SSH user name is not an app name (appname.Valid)
	ExitBridgeStopped    = 251 // the bridge stopped and ended the session at the end of its grace
	ExitKeyLimit         = 252 // this key already runs Config.MaxOneOffsPerKey one-offs, on any of its connections
	ExitRsyncUpload      = 253 // an rsync upload, whose files would end with its one-off (rsync.go)
	ExitAgent            = 254 // connection mode: the agent could not run in the one-off, or the connection's one-off ended under the session
)
