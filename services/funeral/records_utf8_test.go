package funeral

import "testing"

func TestInvalidUTF8Field(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"{\"a\":\"ok\",\"b\":\"\xb3\xa4\"}", "/b"},
		{"{\"a\":{\"x\":1,\"y\":[\"ok\",\"\xff\"]}}", "/a/y/1"},
		{"{\"a\":[{\"n\":\"ok\"},{\"n\":\"\xc0\"}]}", "/a/1/n"},
		{"{\"\xff\":1}", "/\uFFFD"},
		{"[1,true,null,\"\xfe\"]", "/3"},
		{"\"\xfe\"", ""},
		{"{\"a/b\":\"\xfe\"}", "/a~1b"},
	} {
		if got := invalidUTF8Field([]byte(c.body)); got != c.want {
			t.Errorf("%q: %q, want %q", c.body, got, c.want)
		}
	}
}

func FuzzInvalidUTF8Field(f *testing.F) {
	f.Add([]byte("{\"a\":\"\xb3\xa4\"}"))
	f.Add([]byte("[{\"x\":[1,\"\xff\"]}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = invalidUTF8Field(b) // never panics, whatever the input
	})
}
