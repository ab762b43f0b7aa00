"""``ticketflow bench``: ticketflow's speed and scale on this machine, beside baselines."""
