"""The index advisor: the workload, candidates, the planner's opinion (hypopg), the choice, revisions."""
