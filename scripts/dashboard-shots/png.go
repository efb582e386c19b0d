package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

// screenshot has headless Chromium draw the page at o.width x height,
// reduces the image to at most 256 colors (the pages are flat colors and
// anti-aliased text: it keeps them readable at a fraction of the size),
// checks its size and writes it to dst. It returns the bytes written.
func screenshot(ctx context.Context, o renderOpts, htmlPath, dst string, height int) (int, error) {
	abs, err := filepath.Abs(htmlPath)
	if err != nil {
		return 0, err
	}
	raw := filepath.Join(o.work, filepath.Base(dst)+".chromium.png")
	profile := filepath.Join(o.work, "chromium-profile")
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
		"--disable-dev-shm-usage", "--no-first-run", "--disable-extensions", "--hide-scrollbars",
		"--force-device-scale-factor=1", "--user-data-dir="+profile,
		fmt.Sprintf("--window-size=%d,%d", o.width, height), "--screenshot="+raw, "file://"+abs)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("chromium: %w\n%s", err, out)
	}
	f, err := os.Open(raw)
	if err != nil {
		return 0, fmt.Errorf("chromium wrote no screenshot: %w", err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		return 0, fmt.Errorf("chromium's screenshot: %w", err)
	}
	if b := img.Bounds(); b.Dx() != o.width || b.Dy() != height {
		return 0, fmt.Errorf("chromium's screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), o.width, height)
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, quantize(img)); err != nil {
		return 0, err
	}
	if buf.Len() > o.maxBytes {
		return 0, fmt.Errorf("%s would be %d KiB, more than the %d KiB allowed", filepath.Base(dst), buf.Len()>>10, o.maxBytes>>10)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		return 0, err
	}
	return buf.Len(), nil
}

// quantize maps img onto its 256 most frequent colors, each other color
// to the nearest of them.
func quantize(img image.Image) *image.Paletted {
	b := img.Bounds()
	counts := map[color.RGBA]int{}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			counts[rgba(img.At(x, y))]++
		}
	}
	colors := make([]color.RGBA, 0, len(counts))
	for c := range counts {
		colors = append(colors, c)
	}
	sort.Slice(colors, func(i, j int) bool {
		if counts[colors[i]] != counts[colors[j]] {
			return counts[colors[i]] > counts[colors[j]]
		}
		ci, cj := colors[i], colors[j]
		return uint32(ci.R)<<16|uint32(ci.G)<<8|uint32(ci.B) < uint32(cj.R)<<16|uint32(cj.G)<<8|uint32(cj.B)
	})
	if len(colors) > 256 {
		colors = colors[:256]
	}
	pal := make(color.Palette, len(colors))
	index := make(map[color.RGBA]uint8, len(counts))
	for i, c := range colors {
		pal[i] = c
		index[c] = uint8(i)
	}
	out := image.NewPaletted(image.Rect(0, 0, b.Dx(), b.Dy()), pal)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := rgba(img.At(x, y))
			i, ok := index[c]
			if !ok {
				i = uint8(pal.Index(c))
				index[c] = i
			}
			out.SetColorIndex(x-b.Min.X, y-b.Min.Y, i)
		}
	}
	return out
}

func rgba(c color.Color) color.RGBA {
	r, g, b, _ := c.RGBA()
	return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 0xff}
}
