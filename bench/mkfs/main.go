// Command mkfs formats an existing image or block device with Kayo FS, as
// bench/mkfs.sh times it next to mkfs.ocfs2 and mkfs.gfs2:
//
//	go run ./bench/mkfs [-slots 16] [-block-size 4096] [-label L] PATH
//
// It refuses nothing a forced format would not (it passes Force), and
// prints the time Format took inside the process.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

func main() {
	slots := flag.Int("slots", 16, "node slots")
	bs := flag.Int("block-size", 4096, "block size in bytes")
	label := flag.String("label", "BENCH", "volume label")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: mkfs [-slots N] [-block-size B] [-label L] PATH")
		os.Exit(2)
	}
	dev, err := kayofs.OpenDevice(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkfs:", err)
		os.Exit(1)
	}
	defer dev.Close()
	start := time.Now()
	sb, err := kayofs.Format(dev, kayofs.FormatOptions{BlockSize: *bs, Slots: *slots, Label: *label, Force: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkfs:", err)
		os.Exit(1)
	}
	fmt.Printf("kayofs %s: %d blocks of %d bytes, %d slots, %d groups, formatted in %v\n",
		sb.UUIDString(), sb.TotalBlocks, sb.BlockSize, sb.SlotCount, sb.AGCount, time.Since(start))
}
