{{ config(severity='warn') }}
{#- Warns (never blocks) when a campaign send names a campaign the marts do not hold, typically a campaigns export
    re-delivered without it: the sends stay in fct_interactions without a campaign. One row per such campaign. -#}
with sends as (
    select * from {{ ref('stg_marketing__sends') }}
),

campaigns as (
    select * from {{ ref('dim_campaigns') }}
)

select
    sends.campaign_id,
    count(*) as sends_without_their_campaign
from sends
where sends.campaign_id not in (select campaigns.campaign_id from campaigns)
group by sends.campaign_id
