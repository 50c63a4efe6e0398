package appname

import "strings"

// MaxLen is the longest app name, in bytes.
const MaxLen = 64

// Rule says in words what Valid accepts, for messages to users; it reads
// after "app names are".
const Rule = "1 to 64 lowercase letters, digits and dashes, starting with a letter or a digit"

// Valid reports whether name is an app name: 1 to MaxLen bytes of a-z, 0-9
// and '-', the first not a '-'. Such names are also safe in URL paths, log
// lines and apps= glob patterns as they are.
func Valid(name string) bool {
	if name == "" || len(name) > MaxLen || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ConnectionSuffix ends a user name that asks for connection mode by name:
// "demo-app+conn" is app "demo-app" in connection mode. An app name has no
// '+', so the suffix cannot be part of one.
const ConnectionSuffix = "+conn"

// ParseUser splits an SSH user name into the app it names and whether it
// asks for connection mode: a name ending in exactly ConnectionSuffix
// (lowercase) gives the part before it and true; any other name is
// returned whole with false. ParseUser does not check the app: "+conn"
// gives "" and "demo+x" gives "demo+x", which Valid then refuses as it
// refuses any other name that is no app name.
func ParseUser(user string) (app string, connectionMode bool) {
	if app, ok := strings.CutSuffix(user, ConnectionSuffix); ok {
		return app, true
	}
	return user, false
}
