package appname

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
