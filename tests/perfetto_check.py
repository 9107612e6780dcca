"""Decode a patchtrace Perfetto export with Perfetto's own generated module
(perfetto_trace_pb2 from the `perfetto` package) and summarise what a viewer
would see: tracks, slice nesting, flows. Prints one JSON object; the Go test
(cmd/patchtrace TestPerfettoExport) judges it. Fails (exit 1) on a slice end
without a begin, slices left open, or timestamps going back on a track.

usage: perfetto_check.py TRACE.pftrace
"""
import json
import sys
from collections import defaultdict

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb


def main():
    trace = pb.Trace()
    with open(sys.argv[1], "rb") as f:
        trace.ParseFromString(f.read())
    tracks = {}
    stacks = defaultdict(list)
    last_ts = defaultdict(int)
    flows = defaultdict(lambda: {"steps": 0, "ends": 0, "tracks": set()})
    errors = []
    n_slices = defaultdict(int)
    nested = defaultdict(int)  # "parent category>child category" -> count
    max_depth = 0
    instants = defaultdict(int)
    names, cats = {}, {}  # interned: iid -> string
    slice_names = set()
    for p in trace.packet:
        if p.HasField("interned_data"):
            if p.sequence_flags & pb.TracePacket.SEQ_NEEDS_INCREMENTAL_STATE == 0:
                errors.append("interned data on a packet without SEQ_NEEDS_INCREMENTAL_STATE")
            for n in p.interned_data.event_names:
                names[n.iid] = n.name
            for c in p.interned_data.event_categories:
                cats[c.iid] = c.name
        if p.HasField("track_descriptor"):
            td = p.track_descriptor
            tracks[td.uuid] = {"name": td.name, "parent": td.parent_uuid if td.HasField("parent_uuid") else 0}
            continue
        if not p.HasField("track_event"):
            continue
        te = p.track_event
        t = te.track_uuid
        if t not in tracks:
            errors.append("event on an undeclared track %d" % t)
        if p.timestamp < last_ts[t]:
            errors.append("track %d: timestamp %d after %d" % (t, p.timestamp, last_ts[t]))
        last_ts[t] = p.timestamp
        cat = te.categories[0] if te.categories else ""
        if te.category_iids:
            if te.category_iids[0] not in cats:
                errors.append("category iid %d not interned" % te.category_iids[0])
            cat = cats.get(te.category_iids[0], "")
        name = te.name
        if te.HasField("name_iid"):
            if te.name_iid not in names:
                errors.append("name iid %d not interned" % te.name_iid)
            name = names.get(te.name_iid, "")
        if te.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
            if stacks[t]:
                nested[stacks[t][-1][1] + ">" + cat] += 1
            stacks[t].append((name, cat))
            slice_names.add(name)
            max_depth = max(max_depth, len(stacks[t]))
            n_slices[cat] += 1
        elif te.type == pb.TrackEvent.TYPE_SLICE_END:
            if not stacks[t]:
                errors.append("track %d: slice end at %d without a begin" % (t, p.timestamp))
            else:
                stacks[t].pop()
        elif te.type == pb.TrackEvent.TYPE_INSTANT:
            instants[cat] += 1
        for fid in te.flow_ids:
            flows[fid]["steps"] += 1
            flows[fid]["tracks"].add(t)
        for fid in te.terminating_flow_ids:
            flows[fid]["ends"] += 1
            flows[fid]["tracks"].add(t)
    for t, s in stacks.items():
        if s:
            errors.append("track %d: %d slices left open" % (t, len(s)))
    out = {
        "cpu_tracks": sorted(v["name"] for v in tracks.values() if v["parent"] == 0),
        "task_tracks": sorted(v["name"] for v in tracks.values() if v["parent"] != 0),
        "task_parents_ok": all(v["parent"] in tracks and tracks[v["parent"]]["parent"] == 0 for v in tracks.values() if v["parent"]),
        "slices": dict(n_slices),
        "nested": dict(nested),
        "max_depth": max_depth,
        "instants": dict(instants),
        "flows": {str(k): {"steps": v["steps"], "ends": v["ends"], "tracks": len(v["tracks"])} for k, v in flows.items()},
        "slice_names": sorted(slice_names)[:500],
        "errors": errors[:20],
    }
    print(json.dumps(out, sort_keys=True))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
