//go:build !linux && !darwin && !openbsd && !freebsd && !netbsd

package liner

import "fmt"

// Without line editing (live.go), lines are printed as they come and the
// prompt is the one given to Prompt.

// SetPromptFunc does nothing here.
func (s *State) SetPromptFunc(f func() string) {}

// OnAltKey does nothing here.
func (s *State) OnAltKey(r rune, fn func()) {}

// OnFocus does nothing here.
func (s *State) OnFocus(fn func(in bool)) {}

// OnEdit does nothing here.
func (s *State) OnEdit(fn func(line string)) {}

// RefreshPrompt does nothing here.
func (s *State) RefreshPrompt() {}

// PrintAbove prints the lines.
func (s *State) PrintAbove(lines ...string) {
	for _, l := range lines {
		fmt.Println(l)
	}
}

// ReplaceAbove prints the line.
func (s *State) ReplaceAbove(line string) { fmt.Println(line) }

// DisplayWidth is the number of terminal columns s takes.
func DisplayWidth(s string) int { return countGlyphs([]rune(s)) }
