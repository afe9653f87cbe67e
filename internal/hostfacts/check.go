package hostfacts

import "fmt"

// ReportVersion is the Report layout this code writes and reads. Reports
// before the version field decode as version 0; a report of another
// version comes from an agent of another kayoctl and is not read.
const ReportVersion = 1

// Check says why r cannot be used as a host's facts, or nil: another
// version, no time, or a value no machine has.
func (r Report) Check() error {
	switch {
	case r.Version != ReportVersion:
		return fmt.Errorf("report version %d, this kayoctl reads version %d (an agent of another kayoctl version)", r.Version, ReportVersion)
	case r.ReportedAt.IsZero():
		return fmt.Errorf("the report has no reported_at")
	case r.ProcessorVendor == "":
		return fmt.Errorf("the report has no processor_vendor")
	case r.ProcessorCores < 1 || r.ProcessorCores > 1<<16:
		return fmt.Errorf("processor_cores %d is out of range (1 to 65536)", r.ProcessorCores)
	case r.MemoryMB < 1 || r.MemoryMB > 64<<20:
		return fmt.Errorf("memory_mb %d is out of range (1 to 67108864)", r.MemoryMB)
	}
	return nil
}
