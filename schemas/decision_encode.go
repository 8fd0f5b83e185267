package schemas

import (
	"fmt"
	"slices"
	"strconv"
)

// jsonAppender is an event that writes its own JSON encoding, byte for byte
// what json.Marshal writes, without reflection (Marshal uses it).
type jsonAppender interface {
	appendJSON(b []byte) ([]byte, error)
}

func (w Window) appendJSON(b []byte) ([]byte, error) { return AppendWindowJSON(b, &w) }

func (d ScaleDecision) appendJSON(b []byte) ([]byte, error) { return AppendScaleDecisionJSON(b, &d) }

// AppendScaleDecisionJSON appends the JSON encoding of d to b: byte for
// byte what json.Marshal(d) writes (TestAppendScaleDecisionJSONMatchesMarshal),
// without reflection. A NaN or infinite number is an error, as for
// json.Marshal.
func AppendScaleDecisionJSON(b []byte, d *ScaleDecision) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, d.ID)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, d.Kind)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, d.Seq, 10)
	b = append(b, `,"target":{"cluster":`...)
	b = appendJSONString(b, d.Target.Cluster)
	b = append(b, `,"namespace":`...)
	b = appendJSONString(b, d.Target.Namespace)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, d.Target.Kind)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, d.Target.Name)
	b = append(b, `},"entity":`...)
	b = appendJSONString(b, d.Entity)
	b = append(b, `,"at_ms":`...)
	b = strconv.AppendInt(b, d.AtMs, 10)
	b = append(b, `,"expires_ms":`...)
	b = strconv.AppendInt(b, d.ExpiresMs, 10)
	b = append(b, `,"from":`...)
	b = strconv.AppendInt(b, int64(d.From), 10)
	b = append(b, `,"to":`...)
	b = strconv.AppendInt(b, int64(d.To), 10)
	if d.DryRun {
		b = append(b, `,"dry_run":true`...)
	}
	r := &d.Reason
	b = append(b, `,"reason":{"summary":`...)
	b = appendJSONString(b, r.Summary)
	b = append(b, `,"formula":`...)
	b = appendJSONString(b, r.Formula)
	if r.Guard != "" {
		b = append(b, `,"guard":`...)
		b = appendJSONString(b, r.Guard)
	}
	b = append(b, `,"horizon_minutes":`...)
	b = strconv.AppendInt(b, int64(r.HorizonMinutes), 10)
	b = append(b, `,"demands":`...)
	if r.Demands == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range r.Demands {
			dm := &r.Demands[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"signal":`...)
			b = appendJSONString(b, dm.Signal)
			for _, f := range [...]struct {
				key string
				v   float64
			}{{`,"current":`, dm.Current}, {`,"predicted":`, dm.Predicted}, {`,"used":`, dm.Used}, {`,"expect_rate":`, dm.ExpectRate}} {
				var err error
				b = append(b, f.key...)
				if b, err = appendJSONFloat(b, f.v); err != nil {
					return nil, fmt.Errorf("schemas: encode %s: reason.demands[%d]%s %w", d.EventType(), i, f.key[1:], err)
				}
			}
			b = append(b, `,"desired":`...)
			b = strconv.AppendInt(b, int64(dm.Desired), 10)
			b = append(b, `,"source":`...)
			b = appendJSONString(b, dm.Source)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(r.Inputs) > 0 {
		keys := make([]string, 0, len(r.Inputs))
		for k := range r.Inputs {
			keys = append(keys, k)
		}
		slices.Sort(keys) // encoding/json sorts map keys
		b = append(b, `,"inputs":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendJSONFloat(b, r.Inputs[k]); err != nil {
				return nil, fmt.Errorf("schemas: encode %s: reason.inputs[%q]: %w", d.EventType(), k, err)
			}
		}
		b = append(b, '}')
	}
	b = append(b, `},"decided_by":`...)
	b = appendJSONString(b, d.DecidedBy)
	if d.ForecastID != "" {
		b = append(b, `,"forecast_id":`...)
		b = appendJSONString(b, d.ForecastID)
	}
	return append(b, '}'), nil
}
