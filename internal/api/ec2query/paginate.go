package ec2query

import (
	"encoding/base64"
	"fmt"

	"nubo/internal/apierr"
)

// Page is a Describe call's MaxResults and NextToken.
type Page struct {
	Max   int    // 0: everything
	Token string // opaque; empty on the first page
}

// ParsePage reads MaxResults (allowed between lo and hi) and NextToken.
func ParsePage(p Params, lo, hi int) (Page, error) {
	n, ok, err := p.Int("MaxResults")
	if err != nil {
		return Page{}, err
	}
	if ok && (n < lo || n > hi) {
		return Page{}, apierr.InvalidValue("MaxResults", fmt.Sprint(n), fmt.Sprintf("It must be between %d and %d.", lo, hi))
	}
	return Page{Max: n, Token: p.String("NextToken")}, nil
}

// Paginate returns the page of items (sorted ascending by key) that follows
// pg.Token, and the token of the next page ("" on the last one).
func Paginate[T any](items []T, key func(T) string, pg Page) ([]T, string, error) {
	start := 0
	if pg.Token != "" {
		after, err := base64.RawURLEncoding.DecodeString(pg.Token)
		if err != nil || len(after) == 0 {
			return nil, "", apierr.New(apierr.InvalidNextToken, "The token '%s' is invalid.", pg.Token)
		}
		for start < len(items) && key(items[start]) <= string(after) {
			start++
		}
	}
	rest := items[start:]
	if pg.Max == 0 || len(rest) <= pg.Max {
		return rest, "", nil
	}
	page := rest[:pg.Max]
	return page, base64.RawURLEncoding.EncodeToString([]byte(key(page[len(page)-1]))), nil
}
