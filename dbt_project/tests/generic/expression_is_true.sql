{#- Fails on every row of the model where the expression (a SQL boolean over its columns) does not hold. -#}
{% test expression_is_true(model, expression) %}

select *
from {{ model }}
where not ({{ expression }})

{% endtest %}
