maintenance = ["22"]
