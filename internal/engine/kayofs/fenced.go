package kayofs

import "fmt"

// fencedDevice is the device of a mount whose lock manager can lose its
// lease: every write and sync first asks the manager, and once it has
// fenced itself they all fail (wrapping ErrFenced, the EIO of this API),
// so a node that another may already be recovering never writes again.
type fencedDevice struct {
	Device
	m LockManager
}

func (d *fencedDevice) WriteAt(p []byte, off int64) (int, error) {
	if err := d.m.Fenced(); err != nil {
		return 0, fmt.Errorf("kayofs: write of %d bytes at %d refused: %w", len(p), off, err)
	}
	return d.Device.WriteAt(p, off)
}

func (d *fencedDevice) Sync() error {
	if err := d.m.Fenced(); err != nil {
		return fmt.Errorf("kayofs: sync refused: %w", err)
	}
	return d.Device.Sync()
}

func (d *fencedDevice) refreshSize() error {
	if rd, ok := d.Device.(interface{ refreshSize() error }); ok {
		return rd.refreshSize()
	}
	return nil
}

// Path keeps the device a PathDevice.
func (d *fencedDevice) Path() string {
	if pd, ok := d.Device.(PathDevice); ok {
		return pd.Path()
	}
	return ""
}
