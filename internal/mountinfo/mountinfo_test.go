package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/tab\011x`: "/tab\tx", `/odd\04`: `/odd\04`, `/a\040b\011c\134`: "/a b\tc\\"} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
	if ok, err := IsMounted("/proc"); err != nil || !ok {
		t.Fatalf("/proc not a mount point: %v %v", ok, err)
	}
}
