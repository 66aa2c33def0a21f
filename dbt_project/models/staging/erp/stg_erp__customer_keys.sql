{#- One row per customer key of the ERP customers export, with the customer it stands for. An export that gives
    one person a new key with every order names the person in person_no: the keys of one person are one customer,
    known by the person's first key (in sort order, so the same whatever the file order). A key without a person
    stands for itself. A key given two persons (a contradiction in the export) takes the first of them. -#}
with source as (
    select
        {{ clean_key('customer_no') }} as customer_no,
        person_no
    from {{ source('erp', 'customers') }}
),

keys as (
    select
        customer_no as customer_key,
        min(
            case
                when nullif(trim(person_no), '') is not null then concat('person:', trim(person_no))
                else concat('key:', customer_no)
            end
        ) as person_key
    from source
    where customer_no is not null
    group by customer_no
),

final as (
    select
        customer_key,
        person_key,
        min(customer_key) over (partition by person_key) as erp_customer_id
    from keys
)

select * from final
