"""Quiet alerts: suppression policies (dedup, rate caps) with digests of what they held back.

- `policy`: the policy documents (a falconet extension), read and checked at load;
- `suppressor`: alerts in, admitted alerts and digests out, state in `falconet.state`.
"""
