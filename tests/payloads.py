"""One real case (seed 000: Hegang graphite) as API payloads: a pitch, a fund mandate, a city need."""

PITCH = {
    "company": "鹤岗碳材科技",
    "title": "高纯石墨负极材料深加工",
    "summary": "依托鹤岗晶质石墨资源，建设年产2万吨锂电池石墨负极材料生产线，产品供应动力电池和储能电池企业。",
    "sectors": ["新材料", "石墨负极"],
    "stage": "A轮",
    "funding_ask": 80000000,
    "currency": "CNY",
    "region": "黑龙江省鹤岗市",
    "needs": ["capital", "pilot_line", "land"],
}
MANDATE = {
    "fund_name": "黑龙江省新材料产业引导基金",
    "fund_type": "政府引导基金",
    "thesis": "重点投资石墨负极材料、石墨烯等新材料项目，推动黑龙江石墨产业补链强链。",
    "sectors": ["新材料"],
    "stages": ["A轮", "B轮"],
    "ticket_min": 20000000,
    "ticket_max": 100000000,
    "currency": "CNY",
    "regions": ["黑龙江省"],
    "reinvestment_region": "黑龙江省",
    "reinvestment_ratio": 1.2,
}
NEED = {
    "issuer": "鹤岗市人民政府",
    "region": "黑龙江省鹤岗市",
    "chain_action": "补链",
    "target_sectors": ["新材料"],
    "missing_link": "石墨负极材料深加工",
    "resource_elements": [{"type": "environment", "description": "晶质石墨储量亚洲第一"}],
    "offerings": ["land", "pilot_line", "co_investment"],
    "description": "鹤岗石墨资源丰富但深加工环节薄弱，急需引进石墨负极材料、石墨烯项目补齐产业链。",
}
