package auth

import (
	"errors"
	"strings"
	"testing"
)

// Check reports every bad line, where New stops at the first; it passes
// exactly when New succeeds.
func TestCheckReportsEveryLine(t *testing.T) {
	dir := t.TempDir()
	good := authLine("", newKey(t).PublicKey())
	file := writeFile(t, dir, "authorized_keys", good+"bogus-option "+good+good+`from="x `+good+`apps="!a" `+good)
	ca := writeFile(t, dir, "ca", "restrict "+good)
	problems, warnings := Check(Config{AuthorizedKeysFile: file, TrustedUserCAKeysFile: ca})
	var got []string
	for _, p := range problems {
		got = append(got, p.Error())
	}
	want := []string{file + ":2: ", file + ":4: missing closing quote", ca + ":1: options are not allowed"}
	if len(got) != len(want) {
		t.Fatalf("problems %q, want %d starting %q", got, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d: %q, want it to start %q", i, got[i], want[i])
		}
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], file+":5: apps= has only negated") {
		t.Errorf("warnings %q", warnings)
	}
	if _, err := New(Config{AuthorizedKeysFile: file}); err == nil {
		t.Error("New accepted what Check refused")
	}

	ok := writeFile(t, dir, "ok", good)
	if problems, _ := Check(Config{AuthorizedKeysFile: ok}); problems != nil {
		t.Errorf("good file: %v", problems)
	}
	empty := writeFile(t, dir, "empty", "# nobody\n")
	if problems, _ := Check(Config{AuthorizedKeysFile: empty}); len(problems) != 1 || !errors.Is(problems[0], ErrNoKeys) {
		t.Errorf("no key: %v, want ErrNoKeys", problems)
	}
}
