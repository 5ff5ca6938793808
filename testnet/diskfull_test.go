package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cunzheng/cunzheng/api/client"
)

// TestDiskFullTmpfs runs a node with its data on a small tmpfs, fills the
// filesystem until free space is below the node's headroom, and checks the
// node answers 507 (not a crash, not a lost record) and accepts submissions
// again once space returns.
func TestDiskFullTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test mounts a tmpfs and needs root")
		}
		t.Skip("needs root to mount a tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })

	n := initNetwork(t, filepath.Join(t.TempDir(), "node"))
	const headroom = 32 << 20
	p := startNode(t, n, "CUNZHENG_DATA_DIR="+filepath.Join(mnt, "data"), fmt.Sprintf("CUNZHENG_DISK_HEADROOM=%d", headroom))
	c := p.client(t)
	key := registerSubmitter(t, n, c)
	ctx := context.Background()
	submit := func(i int) error {
		sub, _ := presign(t, n.origin, key, fmt.Appendf(nil, "disk %d", i))
		_, err := c.Submit(ctx, sub)
		return err
	}
	if err := submit(0); err != nil {
		t.Fatalf("submit with space: %v", err)
	}
	// Fill the tmpfs until less than the headroom is free.
	filler := filepath.Join(mnt, "filler")
	var fs syscall.Statfs_t
	syscall.Statfs(mnt, &fs)
	free := int64(fs.Bavail) * int64(fs.Bsize)
	if err := os.WriteFile(filler, make([]byte, free-headroom+(1<<20)), 0o600); err != nil {
		t.Fatalf("fill tmpfs: %v", err)
	}
	err := submit(1)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != 507 || ce.Code != "insufficient_storage" {
		t.Fatalf("with the disk nearly full: %v, want 507 insufficient_storage", err)
	}
	st, err := c.Status(ctx)
	if err != nil || !st.DiskLowHeadroom {
		t.Fatalf("status does not report low disk: %+v %v", st, err)
	}
	sizeFull := st.TreeSize
	// Space returns: submissions resume, nothing was lost.
	os.Remove(filler)
	if err := submit(1); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
	st, _ = c.Status(ctx)
	if st.TreeSize != sizeFull+1 || st.DiskLowHeadroom {
		t.Fatalf("after recovery: size %d (want %d), low=%v", st.TreeSize, sizeFull+1, st.DiskLowHeadroom)
	}
}
