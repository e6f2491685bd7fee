package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// parseData turns "key=value" arguments into a request body with the rules
// of Vault's CLI:
//
//	k=v      the string v
//	k=@file  the contents of file
//	k=\@v    the literal string "@v"
//	k=-      all of stdin
//	-        a JSON object read from stdin, merged in
//	@file    a JSON object read from file, merged in
//
// Repeating a key makes a list. Stdin can be consumed once.
func parseData(args []string, stdin io.Reader) (map[string]any, error) {
	p := dataParser{stdin: stdin, result: map[string]any{}}
	for _, arg := range args {
		if err := p.add(arg); err != nil {
			return nil, err
		}
	}
	return p.result, nil
}

type dataParser struct {
	stdin     io.Reader
	stdinUsed bool
	result    map[string]any
}

func (p *dataParser) readStdin() ([]byte, error) {
	if p.stdin == nil {
		return nil, errors.New("reading from stdin is not supported here")
	}
	if p.stdinUsed {
		return nil, errors.New("stdin can be read only once")
	}
	p.stdinUsed = true
	b, err := io.ReadAll(p.stdin)
	if err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	return b, nil
}

func (p *dataParser) add(arg string) error {
	switch {
	case arg == "":
		return nil
	case arg == "-":
		b, err := p.readStdin()
		if err != nil {
			return err
		}
		return p.merge(b, "stdin")
	}
	key, value, ok := strings.Cut(arg, "=")
	if !ok {
		if strings.HasPrefix(arg, "@") {
			b, err := os.ReadFile(arg[1:])
			if err != nil {
				return fmt.Errorf("read %s: %w", arg[1:], err)
			}
			return p.merge(b, arg[1:])
		}
		return fmt.Errorf("invalid key/value pair %q: format must be key=value", arg)
	}
	if key == "" {
		return fmt.Errorf("invalid key/value pair %q: empty key", arg)
	}
	switch {
	case strings.HasPrefix(value, "@"):
		b, err := os.ReadFile(value[1:])
		if err != nil {
			return fmt.Errorf("read %s: %w", value[1:], err)
		}
		value = string(b)
	case strings.HasPrefix(value, `\@`):
		value = value[1:]
	case value == "-":
		b, err := p.readStdin()
		if err != nil {
			return err
		}
		value = string(b)
	}
	p.set(key, value)
	return nil
}

// merge adds the keys of a JSON object; numbers keep their exact text.
func (p *dataParser) merge(b []byte, source string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return fmt.Errorf("parse JSON object from %s: %w", source, err)
	}
	for k, v := range obj {
		p.result[k] = v
	}
	return nil
}

func (p *dataParser) set(key string, value any) {
	existing, ok := p.result[key]
	if !ok {
		p.result[key] = value
		return
	}
	if list, ok := existing.([]any); ok {
		p.result[key] = append(list, value)
		return
	}
	p.result[key] = []any{existing, value}
}

// parseStringMap parses repeated k=v flags (token metadata, custom metadata).
func parseStringMap(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid key/value pair %q: format must be key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}
