from django import forms

from .models import Evaluation
from .services import PARAMETER_FIELDS


class EvaluationForm(forms.ModelForm):
    """The evaluate dialog: the run's parameters (the service checks the task and saves)."""

    class Meta:
        model = Evaluation
        fields = PARAMETER_FIELDS
        widgets = {"prompt": forms.Textarea(attrs={"rows": 3})}
