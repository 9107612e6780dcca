package emu

import (
	"fmt"

	"github.com/patchtrace/patchtrace/scenario"
)

// Options are the per-run choices made outside the scenario file.
type Options struct {
	Seed     uint64
	CPUs     int    // 0: the scenario's
	MaxInsns uint64 // 0: the scenario's
	NoBudget bool   // run unbounded (no instruction or decision budget)
	NoInject bool   // ignore the scenario's injection plan (exploration)
	Sink     Sink
	// NoLoads and NoRegs leave load events and register deltas out of
	// what Sink gets (Config.NoLoads, Config.NoRegs).
	NoLoads, NoRegs bool
}

// Setup loads spec's slice and builds a machine and its seeded random
// decision source. Errors name the scenario and what is wrong.
func Setup(spec *scenario.Spec, opt Options) (*Machine, *RandomSource, error) {
	img, err := LoadImage(spec.ID+"/"+spec.Slice, spec.ELF)
	if err != nil {
		return nil, nil, fmt.Errorf("scenario %s: %w", spec.ID, err)
	}
	return SetupImage(spec, img, opt)
}

// SetupImage is Setup with an already parsed image (exploration reuses one).
func SetupImage(spec *scenario.Spec, img *Image, opt Options) (*Machine, *RandomSource, error) {
	cfg, sched, err := ConfigFor(spec, opt)
	if err != nil {
		return nil, nil, err
	}
	if err := CheckContract(spec, img); err != nil {
		return nil, nil, err
	}
	m, err := New(img, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("scenario %s: %w", spec.ID, err)
	}
	return m, NewRandomSource(opt.Seed, sched), nil
}

// ConfigFor turns a scenario and options into a machine configuration.
func ConfigFor(spec *scenario.Spec, opt Options) (Config, Schedule, error) {
	cfg := Config{CPUs: spec.CPUs, MaxInsns: spec.MaxInsns, NoBudget: opt.NoBudget, Sink: opt.Sink,
		NoLoads: opt.NoLoads, NoRegs: opt.NoRegs}
	if opt.CPUs != 0 {
		cfg.CPUs = opt.CPUs
	}
	if opt.MaxInsns != 0 {
		cfg.MaxInsns = opt.MaxInsns
	}
	if cfg.CPUs < 1 || cfg.CPUs > MaxCPUs {
		return cfg, Schedule{}, fmt.Errorf("scenario %s: %d CPUs: must be 1..%d", spec.ID, cfg.CPUs, MaxCPUs)
	}
	cfg.Quirks = Quirks{NMIInSTIShadow: spec.Quirks.NMIInSTIShadow,
		StaleFetch: spec.Quirks.Fetch == "stale" || spec.Quirks.Fetch == "torn",
		TornWrites: spec.Quirks.Fetch == "torn",
		IBT:        spec.Quirks.IBT, IBTNoTrack: spec.Quirks.IBTNoTrack}
	id := uint64(1)
	for i, t := range spec.Tasks {
		for _, c := range t.CPUs.Resolve(cfg.CPUs) {
			if c >= cfg.CPUs {
				return cfg, Schedule{}, fmt.Errorf("scenario %s: task %d (%s) is on cpu %d but the machine has %d CPUs", spec.ID, i+1, t.Entry, c, cfg.CPUs)
			}
			cfg.Tasks = append(cfg.Tasks, Task{ID: id, CPU: c, Entry: t.Entry, Arg: t.Arg})
			id++
		}
	}
	for _, name := range spec.ParamNames() {
		cfg.Params = append(cfg.Params, Param{Name: name, Value: spec.Params[name]})
	}
	if !opt.NoInject {
		for _, in := range spec.Inject {
			r := InjectRule{CPU: in.CPU, At: in.At, Hit: in.Hit}
			switch in.Kind {
			case "nmi":
				r.Vector = VecNMI
			case "timer":
				r.Vector = VecTimer
			case "ipi":
				r.Vector = VecCallFunction
			}
			if r.CPU >= cfg.CPUs {
				return cfg, Schedule{}, fmt.Errorf("scenario %s: inject on cpu %d but the machine has %d CPUs", spec.ID, r.CPU, cfg.CPUs)
			}
			cfg.Inject = append(cfg.Inject, r)
		}
	}
	cfg.PercpuSlots = spec.Contract.ReturnSlots
	sched := Schedule{QuantumMin: spec.Schedule.Quantum[0], QuantumMax: spec.Schedule.Quantum[1],
		TimerRate: spec.Schedule.TimerRate, NMIRate: spec.Schedule.NMIRate}
	return cfg, sched, nil
}

// CheckContract resolves the scenario's contract against the slice: every
// must_call site and handler must name a symbol (a typo used to pass
// until analyze silently checked nothing or failed late). Return slots,
// injection addresses and task entries are resolved when the machine is
// built.
func CheckContract(spec *scenario.Spec, img *Image) error {
	for i, mc := range spec.Contract.MustCall {
		if _, err := img.Resolve(mc.Site); err != nil {
			return fmt.Errorf("scenario %s: contract.must_call %d: site: %w", spec.ID, i+1, err)
		}
		for _, h := range mc.Handlers {
			if _, err := img.Resolve(h); err != nil {
				return fmt.Errorf("scenario %s: contract.must_call %d (site %s): handler: %w", spec.ID, i+1, mc.Site, err)
			}
		}
	}
	for _, name := range spec.Contract.ReturnSlots {
		if s, ok := img.Lookup(name); !ok || !s.PerCPU {
			return fmt.Errorf("scenario %s: contract.return_slots: %q: no such per-CPU symbol in the slice", spec.ID, name)
		}
	}
	return nil
}
