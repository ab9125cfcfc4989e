x = "set"

typo_name = "oops"
