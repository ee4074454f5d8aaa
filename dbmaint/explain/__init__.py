"""`dbmaint explain`: running a plan safely, what the plan says, comparing two plans, rendering."""
