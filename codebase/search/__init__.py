"""The MSuNAS search: objectives, the pymoo adapter, subset selection, and the resumable engine."""
