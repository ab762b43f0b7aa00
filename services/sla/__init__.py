"""sla: calendars, SLA policies, timers, breaches, escalations and ops reports."""
