-- Acknowledging an incident says "someone is on it". It is not a lifecycle state (an
-- acknowledged incident still recovers, escalates or resolves as before), so it is a
-- timestamp beside the state, not a transition; the first acknowledgement is kept.
ALTER TABLE incidents ADD COLUMN acknowledged_at timestamptz;
