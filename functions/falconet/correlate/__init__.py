"""Detections that span events: Sigma correlation rules over Falco rules, and first-seen.

- `model`: the correlation model and its limits; `loader`: documents read and checked at load;
- `windows`: sliding windows on event time, one group's state and when it fires;
- `correlator`: matches in, state in the store (`falconet.state`), correlation alerts out;
- `output`: a correlation alert (Falco's shape, the group's values, `falconet.correlation.*`).
"""
