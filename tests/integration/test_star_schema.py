"""The star schema against the exports and against itself: revenue to the cent, and the OLAP rollup."""

import duckdb
import pytest

from pipelines.publish.snapshot import current_snapshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def snapshot(pipeline_run):
    world, result = pipeline_run
    assert result.success
    connection = duckdb.connect(current_snapshot(world.root / "published")["path"], read_only=True)
    yield world, connection
    connection.close()


def test_net_revenue_equals_the_erp_export_to_the_cent(snapshot):
    world, connection = snapshot
    erp = world.landing / "erp"
    # Straight from the files: lines less refunds recorded before the cutoff, each converted at its month's rate.
    exported = duckdb.sql(
        f"""
        with lines as (select * from read_csv('{erp}/order_lines.csv', delim=';', all_varchar=true)),
        orders as (select * from read_csv('{erp}/orders.csv', delim=';', all_varchar=true)),
        refunds as (select * from read_csv('{erp}/returns.csv', delim=';', all_varchar=true)
                    where returned_on < '2026-06-30'),
        rates as (select * from read_csv('{erp}/exchange_rates.csv', delim=';', all_varchar=true))
        select
            orders.currency_code,
            sum(replace(lines.line_amount, ',', '.')::decimal(18, 2)
                - coalesce(replace(refunds.refund_amount, ',', '.')::decimal(18, 2), 0)) as net_amount,
            sum(round((replace(lines.line_amount, ',', '.')::decimal(18, 2)
                - coalesce(replace(refunds.refund_amount, ',', '.')::decimal(18, 2), 0))
                * case when orders.currency_code = 'EUR' then 1
                       else replace(rates.eur_per_unit, ',', '.')::decimal(18, 6) end, 2)) as net_revenue
        from lines
        join orders using (order_no)
        left join refunds using (order_no, line_no)
        left join rates on rates.currency_code = orders.currency_code
            and rates.rate_month = strftime(orders.ordered_at::timestamp, '%Y-%m-01')
        where orders.ordered_at < '2026-06-30'
        group by 1 order by 1"""
    ).fetchall()
    warehouse = connection.execute(
        "select currency_code, sum(net_amount), sum(net_revenue) from marts.fct_order_lines group by 1 order by 1"
    ).fetchall()
    assert len(exported) >= 2, "the demo sells in several currencies"
    assert warehouse == exported


def test_one_query_on_the_olap_mart_answers_revenue_by_quarter_category_region(snapshot):
    _, connection = snapshot
    from_rollup = connection.execute(
        """select quarter_label, category_name, region_name, net_revenue
        from marts.olap_sales_rollup
        where date_level = 'quarter' and geography_level = 'region'
          and category_name <> 'All' and sales_channel = 'All' and loyalty_tier = 'All' and rfm_segment = 'All'
        order by 1, 2, 3"""
    ).fetchall()
    from_facts = connection.execute(
        """select calendar.calendar_quarter, products.category_name, geography.region_name, sum(lines.net_revenue)
        from marts.fct_order_lines as lines
        join marts.dim_date as calendar on lines.order_date = calendar.date_day
        join marts.dim_products as products using (product_id)
        join marts.dim_customers as customers using (customer_id)
        join marts.dim_geography as geography using (geography_id)
        group by all order by 1, 2, 3"""
    ).fetchall()
    assert len(from_rollup) > 20
    assert from_rollup == from_facts


def test_rollup_levels_add_up_and_distinct_customers_are_not_summed(snapshot):
    _, connection = snapshot
    total, customers = connection.execute(
        "select net_revenue, customers from marts.olap_sales_rollup "
        "where date_level = 'all' and geography_level = 'all' "
        "and category_name = 'All' and sales_channel = 'All' and loyalty_tier = 'All' and rfm_segment = 'All'"
    ).fetchone()
    by_year = connection.execute(
        "select sum(net_revenue), sum(customers) from marts.olap_sales_rollup where date_level = 'year' "
        "and geography_level = 'all' "
        "and category_name = 'All' and sales_channel = 'All' and loyalty_tier = 'All' and rfm_segment = 'All'"
    ).fetchone()
    facts = connection.execute("select sum(net_revenue), count(distinct customer_id) from marts.fct_order_lines")
    assert (total, customers) == facts.fetchone()
    assert by_year[0] == total
    assert by_year[1] > customers, "customers who bought in several years are counted once in the total"
    by_segment = connection.execute(
        "select rfm_segment, net_revenue from marts.olap_sales_rollup where date_level = 'all' "
        "and geography_level = 'all' and rfm_segment <> 'All' order by 1"
    ).fetchall()
    segment_facts = connection.execute(
        """select scores.rfm_segment, sum(lines.net_revenue) from marts.fct_order_lines as lines
        join marts.customer_scores as scores using (customer_id) group by all order by 1"""
    ).fetchall()
    assert len(by_segment) >= 5 and by_segment == segment_facts


def test_orders_reconcile_with_their_lines_and_the_export(snapshot):
    world, connection = snapshot
    orders, revenue, first_orders = connection.execute(
        "select count(*), sum(net_revenue), count(*) filter (where customer_order_number = 1) from marts.fct_orders"
    ).fetchone()
    lines_revenue, buyers = connection.execute(
        "select sum(net_revenue), count(distinct customer_id) from marts.fct_order_lines"
    ).fetchone()
    exported = duckdb.sql(
        f"select count(*) from read_csv('{world.landing / 'erp' / 'orders.csv'}', delim=';', all_varchar=true) "
        "where ordered_at < '2026-06-30'"
    ).fetchall()[0][0]
    assert orders == exported
    assert revenue == lines_revenue
    assert first_orders == buyers, "every buyer has exactly one first order"


def test_support_cases_resolve_to_customers_and_prospects(snapshot):
    _, connection = snapshot
    cases, resolved, open_cases = connection.execute(
        "select count(*), count(customer_id), count(*) filter (where is_open) from marts.fct_support_cases"
    ).fetchone()
    assert cases > 0 and resolved / cases > 0.95
    assert (
        connection.execute(
            "select count(*) from marts.fct_support_cases where not is_open and resolution_hours < 0"
        ).fetchone()[0]
        == 0
    )
    assert open_cases < cases


def test_dbt_docs_generate_describes_every_mart_and_its_columns(pipeline_run, tmp_path):
    import json
    import os
    import subprocess

    from pipelines.transform.project import DBT_EXECUTABLE, DBT_PROJECT_DIR

    world, _ = pipeline_run
    environ = {**os.environ, "CRM_WAREHOUSE_PATH": str(world.root / "warehouse" / "crm.duckdb")}
    # as by hand: the marts file is the one beside the warehouse (profiles.yml), not one an earlier run set
    environ.pop("CRM_MARTS_PATH", None)
    completed = subprocess.run(
        [DBT_EXECUTABLE, "docs", "generate", "--target-path", str(tmp_path), "--vars", "{as_of: '2026-06-30'}"],
        cwd=DBT_PROJECT_DIR, env=environ, capture_output=True, text=True,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-2000:]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    marts = [
        node for node in manifest["nodes"].values() if node["resource_type"] == "model" and node["fqn"][1] == "marts"
    ]
    assert len(marts) >= 9
    for node in marts:
        assert node["description"], f"{node['name']} has no description"
        assert node["unique_id"] in catalog["nodes"], f"{node['name']} is not in the docs catalog"
        built = {column.lower() for column in catalog["nodes"][node["unique_id"]]["columns"]}
        described = {name.lower() for name, column in node["columns"].items() if column["description"].strip()}
        assert built - described == set(), f"{node['name']} has columns without a description"


def test_customer_360_has_every_customer_and_agrees_with_the_facts(snapshot):
    _, connection = snapshot
    rows, customers = connection.execute(
        "select (select count(*) from marts.customer_360), (select count(*) from marts.dim_customers)"
    ).fetchone()
    assert rows == customers
    disagreeing = connection.execute(
        """select count(*) from marts.customer_360 as c
        left join (select customer_id, count(*) as orders from marts.fct_orders group by all) as f using (customer_id)
        where c.lifetime_orders <> coalesce(f.orders, 0)"""
    ).fetchone()[0]
    assert disagreeing == 0
    revenue = connection.execute("select sum(lifetime_net_revenue) from marts.customer_360").fetchone()[0]
    assert revenue == connection.execute("select sum(net_revenue) from marts.fct_orders").fetchone()[0]
    open_cases = connection.execute("select sum(open_support_cases) from marts.customer_360").fetchone()[0]
    assert (
        open_cases
        == connection.execute(
            "select count(*) from marts.fct_support_cases where is_open and customer_id in "
            "(select customer_id from marts.dim_customers)"
        ).fetchone()[0]
    )
    # the preferred channels and the last contact agree with the timeline they are read from
    disagreeing = connection.execute(
        """with inbound as (
            select customer_id, channel_id, count(*) as touches from marts.fct_interactions
            where direction = 'inbound' and customer_id is not null group by all),
        most as (select customer_id, max(touches) as touches from inbound group by all),
        latest as (select customer_id, max(occurred_at) as occurred_at from marts.fct_interactions group by all)
        select count(*) from marts.customer_360 as c
        left join inbound as i on c.customer_id = i.customer_id and c.preferred_channel_by_interactions = i.channel_id
        left join most as m on c.customer_id = m.customer_id
        left join latest as l on c.customer_id = l.customer_id
        where i.touches is distinct from m.touches or c.last_contact_at is distinct from l.occurred_at"""
    ).fetchone()[0]
    assert disagreeing == 0
    responders, responding_on_preferred = connection.execute(
        """select count(*), count(*) filter (where exists (
            select 1 from marts.fct_interactions as i where i.customer_id = c.customer_id
            and i.channel_id = c.preferred_channel_by_responses
            and i.interaction_type in ('open', 'click', 'conversion')))
        from marts.customer_360 as c where preferred_channel_by_responses is not null"""
    ).fetchone()
    assert responders > 0 and responding_on_preferred == responders
    consenting = connection.execute("select avg(has_email_consent::int) from marts.customer_360").fetchone()[0]
    assert 0 < consenting < 1, "some customers opted in to email and some did not"


def test_revenue_concentration_is_the_pareto_curve_of_the_orders(snapshot):
    _, connection = snapshot
    curve = connection.execute(
        "select customer_percentile, cumulative_revenue_share from marts.mart_revenue_concentration order by 1"
    ).fetchall()
    shares = [share for _, share in curve]
    assert [p for p, _ in curve] == list(range(1, 101))
    assert shares == sorted(shares) and abs(shares[-1] - 1) < 1e-9
    revenue = sorted(
        (
            row[0]
            for row in connection.execute(
                "select sum(net_revenue) from marts.fct_orders group by customer_id"
            ).fetchall()
        ),
        reverse=True,
    )
    top = sum(revenue[: -(-len(revenue) * 20 // 100)])  # the customers in percentiles 1-20
    assert abs(float(top / sum(revenue)) - shares[19]) < 1e-9


def test_cohort_retention_counts_each_cohort_once_and_starts_at_one(snapshot):
    _, connection = snapshot
    first_month = connection.execute(
        "select count(*), min(retention_rate), max(retention_rate), sum(cohort_customers) "
        "from marts.mart_cohort_retention where months_since_first_purchase = 0"
    ).fetchone()
    buyers = connection.execute("select count(distinct customer_id) from marts.fct_orders").fetchone()[0]
    assert first_month[1] == first_month[2] == 1.0
    assert first_month[3] == buyers
    cohort, months, active = connection.execute(
        "select cohort_month, months_since_first_purchase, active_customers from marts.mart_cohort_retention "
        "where months_since_first_purchase = 3 order by cohort_month limit 1"
    ).fetchone()
    recount = connection.execute(
        """select count(distinct customer_id) from marts.fct_orders
        where customer_id in (select customer_id from marts.fct_orders group by 1
                              having date_trunc('month', min(order_date)) = ?)
          and date_trunc('month', order_date) = ?::date + interval 3 month""",
        [cohort, cohort],
    ).fetchone()[0]
    assert months == 3 and active == recount
