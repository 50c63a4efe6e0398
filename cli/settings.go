package cli

// Setting is one flag's value after Parse, for printing the effective
// configuration (as `sshd -T` does).
type Setting struct {
	Name  string // the flag's name, without dashes
	Value string // the value as the flag writes it: "" for an empty string or list
	// Bool says the flag is a switch (true or false).
	Bool bool
}

// Settings lists every flag except aliases, in the order they were
// defined, with the value Parse left it: the command line's, else its
// variable's, else the default.
func (s *FlagSet) Settings() []Setting {
	var out []Setting
	for _, f := range s.flags {
		if f.aliasOf != nil {
			continue
		}
		_, isBool := f.value.(*Bool)
		out = append(out, Setting{Name: f.Name, Value: f.value.String(), Bool: isBool})
	}
	return out
}
