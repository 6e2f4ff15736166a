package client

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// ReadPasswordFile returns the first line of a password file (--password-file).
func ReadPasswordFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	pw := strings.TrimRight(sc.Text(), "\r")
	if pw == "" {
		return "", fmt.Errorf("password file %s: first line is empty", path)
	}
	return pw, nil
}

// WriteReadyFile writes the logged-in id to path atomically (a temporary
// file renamed into place), so that a script polling for it never reads
// half of it.
func WriteReadyFile(path string, id int64) error {
	return WriteFileAtomic(path, fmt.Sprintln(id))
}

// WriteFileAtomic writes content to path through a temporary file renamed
// into place.
func WriteFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
