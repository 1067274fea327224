"""``gitfirm report``: rollout statistics from the journal and the status branch."""
