x = "from 10-y"
