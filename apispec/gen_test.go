package apispec

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
)

var update = flag.Bool("update", false, "rewrite partner.yaml from partner.yaml.tmpl and the published copies in docs/api")

// kind describes one pushed resource for the spec template.
type kind struct {
	Go, Plural, Title, Zh, Description string
	// Schema and StoredSchema are YAML bodies indented by six spaces.
	Schema, StoredSchema string
	// Example is a request body; RecordExample the stored record.
	Example, RecordExample string
}

var kinds = []kind{
	{
		Go: "Hall", Plural: "halls", Title: "Hall", Zh: "礼厅",
		Description: "Pushed by funeral homes. A hall (礼厅) with its category and price per session.",
		Schema: `      type: object
      x-mzt141: 服务设施（礼厅）
      additionalProperties: false
      required: [version, name, category, capacity, price_fen, status]
      properties:
        version: {$ref: "#/components/schemas/Version"}
        name: {type: string, minLength: 1, maxLength: 50, description: 礼厅名称}
        category: {type: string, enum: [large, medium, small, vip, vigil], description: "礼厅类别: 大厅/中厅/小厅/贵宾厅/守灵厅"}
        capacity: {type: integer, minimum: 1, maximum: 2000, description: 容纳人数}
        area_m2: {type: integer, minimum: 1, maximum: 10000, description: 面积（平方米）}
        price_fen: {$ref: "#/components/schemas/PriceFen"}
        status: {type: string, enum: [available, maintenance, retired], description: 状态}
        description: {type: string, maxLength: 1000}
        updated_at: {$ref: "#/components/schemas/Time"}`,
		Example:       `{"version": 3, "name": "长青厅", "category": "large", "capacity": 300, "area_m2": 420, "price_fen": 280000, "status": "available", "updated_at": "2026-11-27T09:30:00+08:00"}`,
		RecordExample: `{"id": "H-001", "partner_id": "funeral.fh01", "version": 3, "revision": 7, "stored_at": "2026-11-27T09:30:01+08:00", "data": {"version": 3, "name": "长青厅", "category": "large", "capacity": 300, "area_m2": 420, "price_fen": 280000, "status": "available", "updated_at": "2026-11-27T09:30:00+08:00"}}`,
	},
	{
		Go: "Vehicle", Plural: "vehicles", Title: "Vehicle", Zh: "车辆",
		Description: "Pushed by funeral homes. A vehicle (车辆) used to carry the deceased or mourners.",
		Schema: `      type: object
      x-mzt141: 服务设施（车辆）
      additionalProperties: false
      required: [version, plate_number, type, seats, price_fen, status]
      properties:
        version: {$ref: "#/components/schemas/Version"}
        plate_number: {type: string, pattern: "^[沪京津冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼渝川贵云藏陕甘青宁新][A-Z][A-Z0-9]{5,6}$", description: 车牌号}
        type: {type: string, enum: [hearse, transfer, coach], description: "车辆类型: 灵车/接运车/家属大巴"}
        seats: {type: integer, minimum: 1, maximum: 60, description: 座位数}
        price_fen: {$ref: "#/components/schemas/PriceFen"}
        status: {type: string, enum: [available, maintenance, retired]}
        updated_at: {$ref: "#/components/schemas/Time"}`,
		Example:       `{"version": 1, "plate_number": "沪A12345", "type": "hearse", "seats": 4, "price_fen": 60000, "status": "available"}`,
		RecordExample: `{"id": "V-001", "partner_id": "funeral.fh01", "version": 1, "revision": 2, "stored_at": "2026-11-27T09:31:00+08:00", "data": {"version": 1, "plate_number": "沪A12345", "type": "hearse", "seats": 4, "price_fen": 60000, "status": "available"}}`,
	},
	{
		Go: "Supply", Plural: "supplies", Title: "Funeral supply", Zh: "丧葬用品",
		Description: "Pushed by funeral homes. A funeral supply (丧葬用品) and its price.",
		Schema: `      type: object
      x-mzt141: 丧葬用品
      additionalProperties: false
      required: [version, name, category, unit, price_fen, status]
      properties:
        version: {$ref: "#/components/schemas/Version"}
        name: {type: string, minLength: 1, maxLength: 100}
        category: {type: string, enum: [urn, coffin, shroud, flowers, wreath, other], description: "类别: 骨灰盒/棺木/寿衣/鲜花/花圈/其他"}
        unit: {type: string, minLength: 1, maxLength: 10, description: 计量单位}
        price_fen: {$ref: "#/components/schemas/PriceFen"}
        stock: {type: integer, minimum: 0, maximum: 1000000, description: 库存}
        status: {type: string, enum: [on_sale, off_sale]}
        updated_at: {$ref: "#/components/schemas/Time"}`,
		Example:       `{"version": 2, "name": "环保骨灰盒（标准）", "category": "urn", "unit": "个", "price_fen": 58000, "stock": 120, "status": "on_sale"}`,
		RecordExample: `{"id": "S-URN-01", "partner_id": "funeral.fh01", "version": 2, "revision": 4, "stored_at": "2026-11-27T09:32:00+08:00", "data": {"version": 2, "name": "环保骨灰盒（标准）", "category": "urn", "unit": "个", "price_fen": 58000, "stock": 120, "status": "on_sale"}}`,
	},
	{
		Go: "Schedule", Plural: "schedules", Title: "Schedule", Zh: "排班",
		Description: "Pushed by funeral homes. The slots of one hall or vehicle on one day (礼厅、车辆排班).",
		Schema: `      type: object
      additionalProperties: false
      required: [version, resource_type, resource_id, date, slots]
      properties:
        version: {$ref: "#/components/schemas/Version"}
        resource_type: {type: string, enum: [hall, vehicle]}
        resource_id: {$ref: "#/components/schemas/RecordID"}
        date: {$ref: "#/components/schemas/Date"}
        slots:
          type: array
          maxItems: 96
          items:
            type: object
            additionalProperties: false
            required: [start_at, end_at, state]
            properties:
              start_at: {$ref: "#/components/schemas/Time"}
              end_at: {$ref: "#/components/schemas/Time"}
              state: {type: string, enum: [free, booked, blocked], description: "空闲/已约/停用"}
        updated_at: {$ref: "#/components/schemas/Time"}`,
		Example:       `{"version": 5, "resource_type": "hall", "resource_id": "H-001", "date": "2026-11-28", "slots": [{"start_at": "2026-11-28T08:00:00+08:00", "end_at": "2026-11-28T09:30:00+08:00", "state": "free"}, {"start_at": "2026-11-28T10:00:00+08:00", "end_at": "2026-11-28T11:30:00+08:00", "state": "booked"}]}`,
		RecordExample: `{"id": "H-001-20261128", "partner_id": "funeral.fh01", "version": 5, "revision": 9, "stored_at": "2026-11-27T09:33:00+08:00", "data": {"version": 5, "resource_type": "hall", "resource_id": "H-001", "date": "2026-11-28", "slots": [{"start_at": "2026-11-28T08:00:00+08:00", "end_at": "2026-11-28T09:30:00+08:00", "state": "free"}]}}`,
	},
	{
		Go: "Reservation", Plural: "reservations", Title: "Reservation", Zh: "预约",
		Description: "Pushed by funeral homes. The status of a reservation (预约状态变更), whether it was made through the hub or at the home.",
		Schema: `      type: object
      x-mzt141: 预约
      additionalProperties: false
      required: [version, resource_type, resource_id, start_at, end_at, status, channel]
      properties:
        version: {$ref: "#/components/schemas/Version"}
        resource_type: {type: string, enum: [hall, vehicle]}
        resource_id: {$ref: "#/components/schemas/RecordID"}
        start_at: {$ref: "#/components/schemas/Time"}
        end_at: {$ref: "#/components/schemas/Time"}
        status: {type: string, enum: [pending, confirmed, cancelled, completed, no_show], description: "待确认/已确认/已取消/已完成/未到场"}
        channel: {type: string, enum: [one_stop_portal, counter, phone, online], description: 预约渠道}
        hub_reference: {type: string, maxLength: 64, description: the hub's booking reference when booked through the hub (平台预约号)}
        deceased_name: {type: string, maxLength: 50}
        contact: {$ref: "#/components/schemas/Contact"}
        reason: {type: string, maxLength: 200, description: 变更原因}
        updated_at: {$ref: "#/components/schemas/Time"}`,
		StoredSchema: `      type: object
      properties:
        version: {$ref: "#/components/schemas/Version"}
        resource_type: {type: string}
        resource_id: {type: string}
        start_at: {type: string}
        end_at: {type: string}
        status: {type: string}
        channel: {type: string}
        hub_reference: {type: string}
        deceased_name: {type: string}
        contact: {$ref: "#/components/schemas/StoredContact"}
        reason: {type: string}
        updated_at: {type: string}`,
		Example:       `{"version": 2, "resource_type": "hall", "resource_id": "H-001", "start_at": "2026-11-28T10:00:00+08:00", "end_at": "2026-11-28T11:30:00+08:00", "status": "confirmed", "channel": "one_stop_portal", "hub_reference": "BK-20261127-000123", "deceased_name": "张某某", "contact": {"name": "张三", "relation": "子", "phone": "13812345678"}}`,
		RecordExample: `{"id": "R-88001", "partner_id": "funeral.fh01", "version": 2, "revision": 3, "stored_at": "2026-11-27T09:34:00+08:00", "data": {"version": 2, "resource_type": "hall", "resource_id": "H-001", "start_at": "2026-11-28T10:00:00+08:00", "end_at": "2026-11-28T11:30:00+08:00", "status": "confirmed", "channel": "one_stop_portal", "hub_reference": "BK-20261127-000123", "deceased_name": "张某某", "contact": {"name": "张三", "relation": "子", "phone": "138****5678"}}}`,
	},
	{
		Go: "Deceased", Plural: "deceased", Title: "Deceased and body status", Zh: "逝者及遗体状态",
		Description: "Pushed by funeral homes. The deceased and the status of the body (遗体状态): received 接收, stored 冷藏, farewell 告别, cremated 火化, ashes_collected 骨灰领取.",
		Schema: `      type: object
      x-mzt141: 逝者
      additionalProperties: false
      required: [version, name, gender, body_status, status_at]
      properties:
        version: {$ref: "#/components/schemas/Version"}
        name: {type: string, minLength: 1, maxLength: 50, description: 逝者姓名}
        gender: {type: string, enum: [male, female, unknown]}
        id_number: {$ref: "#/components/schemas/IDNumber"}
        death_date: {$ref: "#/components/schemas/Date"}
        body_status: {type: string, enum: [received, stored, farewell, cremated, ashes_collected], description: 遗体状态}
        status_at: {$ref: "#/components/schemas/Time"}
        received_at: {$ref: "#/components/schemas/Time"}
        storage_location: {type: string, maxLength: 50, description: 存放位置}
        contact: {$ref: "#/components/schemas/Contact"}
        updated_at: {$ref: "#/components/schemas/Time"}`,
		StoredSchema: `      type: object
      properties:
        version: {$ref: "#/components/schemas/Version"}
        name: {type: string}
        gender: {type: string}
        id_number: {$ref: "#/components/schemas/MaskedIDNumber"}
        death_date: {type: string}
        body_status: {type: string}
        status_at: {type: string}
        received_at: {type: string}
        storage_location: {type: string}
        contact: {$ref: "#/components/schemas/StoredContact"}
        updated_at: {type: string}`,
		Example:       `{"version": 4, "name": "李某某", "gender": "female", "id_number": "310101194501010024", "death_date": "2026-11-25", "body_status": "stored", "status_at": "2026-11-25T16:20:00+08:00", "received_at": "2026-11-25T14:05:00+08:00", "storage_location": "冷藏柜 B-12", "contact": {"name": "李四", "relation": "女", "phone": "13900001111"}}`,
		RecordExample: `{"id": "D-2026-04411", "partner_id": "funeral.fh01", "version": 4, "revision": 6, "stored_at": "2026-11-25T16:20:02+08:00", "data": {"version": 4, "name": "李某某", "gender": "female", "id_number": "310***********0024", "death_date": "2026-11-25", "body_status": "stored", "status_at": "2026-11-25T16:20:00+08:00", "received_at": "2026-11-25T14:05:00+08:00", "storage_location": "冷藏柜 B-12", "contact": {"name": "李四", "relation": "女", "phone": "139****1111"}}}`,
	},
	{
		Go: "Burial", Plural: "burials", Title: "Burial record", Zh: "落葬数据",
		Description: "Pushed by cemeteries and columbaria. One burial or niche placement (落葬/安放记录).",
		Schema: `      type: object
      x-mzt141: 安葬
      additionalProperties: false
      required: [version, deceased_name, burial_date, burial_type, plot_code]
      properties:
        version: {$ref: "#/components/schemas/Version"}
        deceased_name: {type: string, minLength: 1, maxLength: 50}
        id_number: {$ref: "#/components/schemas/IDNumber"}
        burial_date: {$ref: "#/components/schemas/Date"}
        burial_type: {type: string, enum: [grave, niche, tree, lawn, flower, wall, other], description: "安葬方式: 墓穴/骨灰格位/树葬/草坪葬/花坛葬/壁葬/其他"}
        plot_code: {type: string, minLength: 1, maxLength: 50, description: 墓位/格位编号}
        certificate_no: {type: string, maxLength: 50, description: 安葬证号}
        contact: {$ref: "#/components/schemas/Contact"}
        updated_at: {$ref: "#/components/schemas/Time"}`,
		StoredSchema: `      type: object
      properties:
        version: {$ref: "#/components/schemas/Version"}
        deceased_name: {type: string}
        id_number: {$ref: "#/components/schemas/MaskedIDNumber"}
        burial_date: {type: string}
        burial_type: {type: string}
        plot_code: {type: string}
        certificate_no: {type: string}
        contact: {$ref: "#/components/schemas/StoredContact"}
        updated_at: {type: string}`,
		Example:       `{"version": 1, "deceased_name": "王某某", "id_number": "310104193803150019", "burial_date": "2026-11-20", "burial_type": "tree", "plot_code": "松园-3-112", "certificate_no": "AZ2026110045", "contact": {"name": "王五", "relation": "子", "phone": "13700002222"}}`,
		RecordExample: `{"id": "B-2026-1045", "partner_id": "cemetery.cm01", "version": 1, "revision": 1, "stored_at": "2026-11-20T15:00:00+08:00", "data": {"version": 1, "deceased_name": "王某某", "id_number": "310***********0019", "burial_date": "2026-11-20", "burial_type": "tree", "plot_code": "松园-3-112", "certificate_no": "AZ2026110045", "contact": {"name": "王五", "relation": "子", "phone": "137****2222"}}}`,
	},
}

type specData struct {
	Kinds                                        []kind
	InstitutionExample, InstitutionRecordExample string
	IntermediaryExample, StaffExample            string
	CreditExample                                string
}

func render(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile("partner.yaml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := template.Must(template.New("spec").Funcs(template.FuncMap{"lower": strings.ToLower}).Parse(string(src)))
	inst := `{"version": 1, "name": "上海市某区殡仪馆", "type": "funeral_home", "credit_code": "12310000425012345X", "division_code": "310104", "address": "上海市徐汇区某路 1 号", "phone": "021-64000000", "service_hours": "每日 06:00-17:00", "service_guide": {"summary": "遗体接运、告别、火化一站式服务", "procedures": ["预约", "接运", "告别", "火化", "领取骨灰"], "required_documents": ["死亡证明", "经办人身份证"]}}`
	data := specData{
		Kinds:                    kinds,
		InstitutionExample:       inst,
		InstitutionRecordExample: `{"id": "institution", "partner_id": "funeral.fh01", "version": 1, "revision": 1, "stored_at": "2026-11-27T09:00:00+08:00", "data": ` + inst + `}`,
		IntermediaryExample:      `{"id": "IM-0012", "name": "上海某殡葬服务有限公司", "credit_code": "91310104MA1FL1234X", "division_code": "310104", "status": "active", "registered_on": "2021-05-10"}`,
		StaffExample:             `{"id": "ST-0301", "name": "赵某", "role": "礼仪师", "certificate_no": "LY2020-0301", "phone": "136****8899"}`,
		CreditExample:            `{"id": "CL-2026-007", "list": "black", "subject_type": "intermediary", "subject_id": "IM-0099", "subject_name": "上海某殡葬咨询工作室", "reason": "违规收费", "listed_on": "2026-09-01", "expires_on": "2027-08-31"}`,
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPartnerSpecGenerated keeps partner.yaml equal to its template.
func TestPartnerSpecGenerated(t *testing.T) {
	got := render(t)
	if *update {
		if err := os.WriteFile("partner.yaml", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("partner.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("partner.yaml is out of date: run go test ./apispec -update")
	}
}

// publishedDir holds the copies of the documents integrators read.
const publishedDir = "../docs/api"

// TestPublishedCopies keeps docs/api/*.yaml byte-equal to the documents
// embedded and served by the hub (the published spec is the one that runs).
// It reads the sources from disk, so that with -update it copies the
// partner.yaml TestPartnerSpecGenerated has just written.
func TestPublishedCopies(t *testing.T) {
	for _, name := range []string{"partner.yaml", "booking.yaml"} {
		served, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(publishedDir, name)
		if *update {
			if err := os.WriteFile(path, served, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, served) {
			t.Errorf("%s differs from apispec/%s (the source): edit apispec/ and run go test ./apispec -update", path, name)
		}
	}
	// Nothing else is published there unchecked.
	entries, err := os.ReadDir(publishedDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); n != "partner.yaml" && n != "booking.yaml" {
			t.Errorf("docs/api/%s: only the published copies belong there", n)
		}
	}
}
