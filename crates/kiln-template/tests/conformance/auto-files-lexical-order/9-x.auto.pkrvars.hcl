x = "from 9-x"
