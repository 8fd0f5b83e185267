package backtest

import (
	"fmt"

	"github.com/ebbflow/ebbflow/internal/sim/trace"
)

// SharedReport is the backtest on every shared trace it replays, each
// with the same options, and the traces it skips with the reason.
type SharedReport struct {
	Dir     string        `json:"dir"`
	Reports []Report      `json:"reports"`
	Skipped []SharedTrace `json:"skipped"`
}

// RunShared runs the backtest on every trace of SharedTraces found in dir
// that it replays. A trace listed but missing from dir is an error naming
// the file and the directory.
func RunShared(dir string, o Options) (SharedReport, error) {
	out := SharedReport{Dir: dir}
	for _, st := range SharedTraces() {
		if st.Skip != "" {
			out.Skipped = append(out.Skipped, st)
			continue
		}
		path, err := trace.InDir(dir, st.File)
		if err != nil {
			return out, fmt.Errorf("backtest: %w", err)
		}
		c, format, err := ReadTrace(path)
		if err != nil {
			return out, err
		}
		if format != st.Format {
			return out, fmt.Errorf("backtest: trace %s: read as %s, listed as %s", path, format, st.Format)
		}
		r, err := Run(c, o)
		if err != nil {
			return out, fmt.Errorf("backtest: trace %s: %w", st.File, err)
		}
		r.Trace, r.Format = st.File, format
		out.Reports = append(out.Reports, r)
	}
	return out, nil
}
