{#- The identity records (int_identity_records_normalised) to normalise again, one source_key each, when tonight's
    plan (int_sales_rebuild_plan) is incremental; none when it is full. A record's keys are a function of its
    fields, its calling code and trunk prefix and, for a call, the countries in use: their fingerprint
    (int_identity_record_inputs). So a record is touched when it is new, gone (a file taken back, an ERP customer
    no longer kept, a contact created after the cutoff moved back), or its fingerprint differs from the one its
    row was built from, whatever file it came in (a record corrected in place counts); and every copy of a key is
    normalised again when the number of copies changed. Settings and code the keys depend on are the plan's: a
    change of either rebuilds every record. -#}
{%- set built = rebuild_plan_relation('int_identity_records_normalised') %}
{%- set read = {
    'inputs': ref('int_identity_record_inputs'),
    'plan': ref('int_sales_rebuild_plan'),
} %}

{% if rebuild_plan_is_incremental() %}
    with tonight as (
        select
            source_key,
            input_fingerprint,
            count(*) as copies
        from {{ read.inputs }}
        group by source_key, input_fingerprint
    ),

    last_build as (
        select
            source_key,
            input_fingerprint,
            count(*) as copies
        from {{ built }}
        group by source_key, input_fingerprint
    ),

    final as (
        select distinct source_key
        from ({{ rebuild_plan_changed_rows('tonight', 'last_build') }}) as changed
    )

    select * from final
{% else %}
    {#- a full build: nothing to list -#}
    {{ rebuild_plan_nothing_touched(read.plan, ['source_key']) }}
{% endif %}
