package main

import (
	"fmt"
	"io"
	"os"

	"github.com/cunzheng/cunzheng/evidence"
)

// progressThreshold is the file size above which hashing shows a progress
// bar (when stderr is a terminal).
const progressThreshold = 64 << 20

// fileDigest is what the log learns about an evidence file.
type fileDigest struct {
	SHA256 []byte
	Size   uint64
}

// hashFile stream-hashes the file at path with SHA-256, never holding it in
// memory. If progress is non-nil and the file is larger than
// progressThreshold, a progress bar is drawn on it.
func hashFile(path string, progress io.Writer) (fileDigest, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileDigest{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileDigest{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileDigest{}, fmt.Errorf("%s is not a regular file", path)
	}
	h := evidence.NewSHA256()
	var dst io.Writer = h
	var bar *progressBar
	if progress != nil && fi.Size() > progressThreshold {
		bar = &progressBar{out: progress, label: "hashing " + fi.Name(), total: fi.Size(), last: -1}
		dst = io.MultiWriter(h, bar)
	}
	n, err := io.Copy(dst, f)
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return fileDigest{}, fmt.Errorf("hash %s: %w", path, err)
	}
	return fileDigest{SHA256: h.Sum(nil), Size: uint64(n)}, nil
}

// progressBar is an io.Writer that counts bytes and redraws one terminal
// line each time another percent is done.
type progressBar struct {
	out         io.Writer
	label       string
	total, done int64
	last        int64 // last percent drawn
}

const barWidth = 30

func (p *progressBar) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if pct := p.done * 100 / max(p.total, 1); pct != p.last {
		p.last = pct
		filled := int(min(pct, 100) * barWidth / 100)
		bar := make([]byte, barWidth)
		for i := range bar {
			bar[i] = '.'
			if i < filled {
				bar[i] = '#'
			}
		}
		fmt.Fprintf(p.out, "\r%s [%s] %3d%% %s / %s", p.label, bar, pct, mib(p.done), mib(p.total))
	}
	return len(b), nil
}

func (p *progressBar) finish() { fmt.Fprintln(p.out) }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
