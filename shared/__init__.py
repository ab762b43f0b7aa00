"""ticketflow's internal library: what every service needs and nothing service-specific."""
