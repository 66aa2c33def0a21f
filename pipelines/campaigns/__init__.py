"""Campaign targeting on the published snapshot: an audience, a plan with exclusions and a stratified random
control group, saved as files into the landing zone (ingested by the next run), and the consented target list.

Everything here reads the published snapshot read-only and never the working warehouse; the command line
(`crm campaign create|export|report`) and the campaigns page call the same functions.
"""

from pipelines.campaigns.audience import CHANNELS, RANK_SCORES, Audience, CampaignError
from pipelines.campaigns.export import LEFT_OUT, ExportResult, TargetList, export_targets, target_list
from pipelines.campaigns.files import campaign_files, is_saved, planned_campaign, save_campaign
from pipelines.campaigns.plan import (
    EXCLUSION_REASONS,
    EXPECTED_VALUE,
    CampaignPlan,
    open_published,
    plan_campaign,
    stratified_control,
)
from pipelines.campaigns.results import campaign_results, result_lines

__all__ = [
    "CHANNELS",
    "EXCLUSION_REASONS",
    "EXPECTED_VALUE",
    "LEFT_OUT",
    "RANK_SCORES",
    "Audience",
    "CampaignError",
    "CampaignPlan",
    "ExportResult",
    "TargetList",
    "campaign_files",
    "campaign_results",
    "export_targets",
    "is_saved",
    "open_published",
    "plan_campaign",
    "planned_campaign",
    "result_lines",
    "save_campaign",
    "stratified_control",
    "target_list",
]
