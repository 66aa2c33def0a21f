{#- The calendar has no gaps: as many days as from its first to its last, and starts on a January 1. -#}
select
    min(date_day) as first_day,
    max(date_day) as last_day,
    count(*) as days
from {{ ref('dim_date') }}
having
    count(*) != {{ dbt.datediff('min(date_day)', 'max(date_day)', 'day') }} + 1
    or extract(month from min(date_day)) != 1
    or extract(day from min(date_day)) != 1
