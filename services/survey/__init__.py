"""survey: survey policies, surveys, responses and satisfaction reports."""
