from django.db import models


class Question(models.Model):
    text = models.CharField(max_length=200)
    pub_date = models.DateTimeField(auto_now_add=True)
    # >>> v2: lines from here to the end marker, and migrations/0002_*.py, are deleted to derive v1
    closed_at = models.DateTimeField(null=True, blank=True)  # nullable: v1 still inserts after a rollback
    # <<< v2

    def __str__(self) -> str:
        return self.text


class Choice(models.Model):
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="choices")
    text = models.CharField(max_length=200)
    votes = models.IntegerField(default=0)

    def __str__(self) -> str:
        return self.text
