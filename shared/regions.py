"""Province-level region resolution across Chinese (simplified/traditional) and English.

Regions arrive as free text ("黑龙江省鹤岗市", "Hegang, Heilongjiang", "臺灣新竹"); matching
compares provinces, and for finer fit, whether one text names the other's city.
"""

from __future__ import annotations

from shared.taxonomy import fold

# code: (simplified short name, English name, notable city names that imply the province)
PROVINCES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "BJ": ("北京", "beijing", ()),
    "TJ": ("天津", "tianjin", ()),
    "HE": ("河北", "hebei", ("石家庄", "shijiazhuang", "雄安", "xiong'an", "唐山", "tangshan", "保定", "baoding")),
    "SX": ("山西", "shanxi", ("太原", "taiyuan", "大同", "datong")),
    "NM": ("内蒙古", "inner mongolia", ("呼和浩特", "hohhot", "包头", "baotou", "鄂尔多斯", "ordos")),
    "LN": ("辽宁", "liaoning", ("沈阳", "shenyang", "大连", "dalian")),
    "JL": ("吉林", "jilin", ("长春", "changchun")),
    "HL": (
        "黑龙江",
        "heilongjiang",
        ("哈尔滨", "harbin", "鹤岗", "hegang", "鸡西", "jixi", "大庆", "daqing", "齐齐哈尔", "qiqihar"),
    ),
    "SH": ("上海", "shanghai", ()),
    "JS": (
        "江苏",
        "jiangsu",
        ("南京", "nanjing", "苏州", "suzhou", "昆山", "kunshan", "无锡", "wuxi", "常州", "changzhou"),
    ),
    "ZJ": (
        "浙江",
        "zhejiang",
        ("杭州", "hangzhou", "宁波", "ningbo", "德清", "deqing", "湖州", "huzhou", "温州", "wenzhou"),
    ),
    "AH": ("安徽", "anhui", ("合肥", "hefei", "芜湖", "wuhu")),
    "FJ": ("福建", "fujian", ("福州", "fuzhou", "厦门", "xiamen", "泉州", "quanzhou")),
    "JX": ("江西", "jiangxi", ("南昌", "nanchang", "赣州", "ganzhou")),
    "SD": ("山东", "shandong", ("济南", "jinan", "青岛", "qingdao", "潍坊", "weifang", "烟台", "yantai")),
    "HA": ("河南", "henan", ("郑州", "zhengzhou", "鹤壁", "hebi", "洛阳", "luoyang")),
    "HB": ("湖北", "hubei", ("武汉", "wuhan", "襄阳", "xiangyang")),
    "HN": ("湖南", "hunan", ("长沙", "changsha", "邵东", "shaodong", "邵阳", "shaoyang", "株洲", "zhuzhou")),
    "GD": (
        "广东",
        "guangdong",
        ("广州", "guangzhou", "深圳", "shenzhen", "东莞", "dongguan", "佛山", "foshan", "珠海", "zhuhai"),
    ),
    "GX": ("广西", "guangxi", ("南宁", "nanning", "柳州", "liuzhou", "钦州", "qinzhou")),
    "HI": ("海南", "hainan", ("海口", "haikou", "三亚", "sanya")),
    "CQ": ("重庆", "chongqing", ()),
    "SC": ("四川", "sichuan", ("成都", "chengdu", "自贡", "zigong", "绵阳", "mianyang", "宜宾", "yibin")),
    "GZ": ("贵州", "guizhou", ("贵阳", "guiyang", "贵安", "gui'an", "guian")),
    "YN": ("云南", "yunnan", ("昆明", "kunming")),
    "XZ": ("西藏", "tibet", ("拉萨", "lhasa")),
    "SN": ("陕西", "shaanxi", ("西安", "xi'an", "xian")),
    "GS": ("甘肃", "gansu", ("兰州", "lanzhou", "酒泉", "jiuquan")),
    "QH": ("青海", "qinghai", ("西宁", "xining")),
    "NX": ("宁夏", "ningxia", ("银川", "yinchuan", "中卫", "zhongwei")),
    "XJ": ("新疆", "xinjiang", ("乌鲁木齐", "urumqi")),
    "TW": ("台湾", "taiwan", ("台北", "taipei", "新竹", "hsinchu", "台中", "taichung")),
    "HK": ("香港", "hong kong", ()),
    "MO": ("澳门", "macau", ("macao",)),
}

NATIONWIDE = {"全国", "全國", "nationwide", "china", "中国", "中國", "any", "不限"}


def provinces_in(text: str) -> set[str]:
    """Province codes named (directly or by a city) in a region text."""
    folded = fold(text)
    found: set[str] = set()
    for code, (zh, en, cities) in PROVINCES.items():
        if zh in folded or en in folded or any(city in folded for city in cities):
            found.add(code)
    return found


def is_nationwide(text: str) -> bool:
    return fold(text) in NATIONWIDE


def region_covers(scope: str, place: str) -> bool:
    """Whether a place lies within a scope ("黑龙江省" covers "Hegang, Heilongjiang")."""
    if is_nationwide(scope):
        return True
    scope_provinces, place_provinces = provinces_in(scope), provinces_in(place)
    if scope_provinces and place_provinces:
        return bool(scope_provinces & place_provinces)
    return fold(scope) in fold(place) or fold(place) in fold(scope)
